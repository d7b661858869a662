from setuptools import setup

package_name = 'rl100_franka_bridge'

setup(
    name=package_name,
    version='0.1.0',
    packages=[package_name],
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='rl100 maintainers',
    maintainer_email='maintainers@rl100.dev',
    description='Bridge from the rl100 safety node to franka_ros2 (gripper, error recovery).',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'franka_bridge = rl100_franka_bridge.franka_bridge:main',
        ],
    },
)
