from burla.services.container_service.worker import main

main()
